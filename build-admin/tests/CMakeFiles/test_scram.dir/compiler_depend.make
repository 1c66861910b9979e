# Empty compiler generated dependencies file for test_scram.
# This may be replaced when dependencies are built.
