# Empty compiler generated dependencies file for strophe_echo.
# This may be replaced when dependencies are built.
