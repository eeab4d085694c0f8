"""nbgrader configuration: this repository is one nbgrader course.

Instructor source notebooks live in ``solutions/<NN_name>/<NN_name>.ipynb`` (one assignment
per notebook) and are released to ``notebooks/<NN_name>/<NN_name>.ipynb``. Use it from the
repository root with ``--config autograde/nbgrader_config.py``, or through
``python -m autograde``, which passes it for you. ``make lab`` puts this folder on
``JUPYTER_CONFIG_PATH`` so that nbgrader's JupyterLab extension (formgrader) finds it too.
"""

import os

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

c.CourseDirectory.root = _ROOT
c.CourseDirectory.course_id = "taming-unstable-gradients"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(_ROOT, "gradebook.db")
# Only notebooks are part of an assignment; data ships inside course_utils.
c.CourseDirectory.include = ["*.ipynb"]

# Student notebooks are clean: no outputs, no execution counts, no solution text.
c.ClearSolutions.code_stub = {
    "python": "# YOUR CODE HERE\nraise NotImplementedError()",
}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.ClearOutput.remove_metadata_fields = ["collapsed", "scrolled", "execution", "ExecuteTime"]
# Checking that the solution notebook runs is the test suite's job (tests/), and a release
# must not depend on the machine's speed.
c.GenerateAssignment.force = True

# Autograding: timeouts that suit a 2-core CPU.
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True
