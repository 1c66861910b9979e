# Empty dependencies file for magpie.
# This may be replaced when dependencies are built.
