"""What a compliance run reports besides pass and fail: the matrix (terminal and HTML), each
case's evidence table in the HTML report, and the JUnit file (written valid for Jenkins, read
back by the demo and the tests with one reader)."""
