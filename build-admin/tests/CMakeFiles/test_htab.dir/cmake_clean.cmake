file(REMOVE_RECURSE
  "CMakeFiles/test_htab.dir/unit/test_htab.c.o"
  "CMakeFiles/test_htab.dir/unit/test_htab.c.o.d"
  "test_htab"
  "test_htab.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_htab.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
