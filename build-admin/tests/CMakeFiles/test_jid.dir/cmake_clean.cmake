file(REMOVE_RECURSE
  "CMakeFiles/test_jid.dir/unit/test_jid.c.o"
  "CMakeFiles/test_jid.dir/unit/test_jid.c.o.d"
  "test_jid"
  "test_jid.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_jid.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
