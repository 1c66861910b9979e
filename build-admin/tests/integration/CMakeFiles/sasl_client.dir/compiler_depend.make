# Empty compiler generated dependencies file for sasl_client.
# This may be replaced when dependencies are built.
