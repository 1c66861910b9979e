file(REMOVE_RECURSE
  "CMakeFiles/strophe_echo.dir/tools/strophe_echo.c.o"
  "CMakeFiles/strophe_echo.dir/tools/strophe_echo.c.o.d"
  "strophe_echo"
  "strophe_echo.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/strophe_echo.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
