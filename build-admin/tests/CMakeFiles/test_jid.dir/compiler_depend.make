# Empty compiler generated dependencies file for test_jid.
# This may be replaced when dependencies are built.
