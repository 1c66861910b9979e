# Empty dependencies file for magpied.
# This may be replaced when dependencies are built.
