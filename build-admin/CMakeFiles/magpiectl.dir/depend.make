# Empty dependencies file for magpiectl.
# This may be replaced when dependencies are built.
