file(REMOVE_RECURSE
  "CMakeFiles/magpied.dir/src/bin/magpied.c.o"
  "CMakeFiles/magpied.dir/src/bin/magpied.c.o.d"
  "magpied"
  "magpied.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/magpied.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
