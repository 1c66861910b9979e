file(REMOVE_RECURSE
  "CMakeFiles/test_sasl.dir/unit/test_sasl.c.o"
  "CMakeFiles/test_sasl.dir/unit/test_sasl.c.o.d"
  "test_sasl"
  "test_sasl.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_sasl.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
