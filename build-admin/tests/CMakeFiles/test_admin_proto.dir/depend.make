# Empty dependencies file for test_admin_proto.
# This may be replaced when dependencies are built.
