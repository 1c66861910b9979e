file(REMOVE_RECURSE
  "CMakeFiles/sasl_client.dir/tools/sasl_client.c.o"
  "CMakeFiles/sasl_client.dir/tools/sasl_client.c.o.d"
  "sasl_client"
  "sasl_client.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/sasl_client.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
