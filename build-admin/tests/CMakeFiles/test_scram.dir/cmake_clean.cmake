file(REMOVE_RECURSE
  "CMakeFiles/test_scram.dir/unit/test_scram.c.o"
  "CMakeFiles/test_scram.dir/unit/test_scram.c.o.d"
  "test_scram"
  "test_scram.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_scram.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
