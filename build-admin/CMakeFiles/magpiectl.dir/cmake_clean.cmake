file(REMOVE_RECURSE
  "CMakeFiles/magpiectl.dir/src/bin/magpiectl.c.o"
  "CMakeFiles/magpiectl.dir/src/bin/magpiectl.c.o.d"
  "magpiectl"
  "magpiectl.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/magpiectl.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
