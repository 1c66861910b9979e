# Empty compiler generated dependencies file for test_sasl.
# This may be replaced when dependencies are built.
