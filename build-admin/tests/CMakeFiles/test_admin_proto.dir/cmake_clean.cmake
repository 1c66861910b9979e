file(REMOVE_RECURSE
  "CMakeFiles/test_admin_proto.dir/unit/test_admin_proto.c.o"
  "CMakeFiles/test_admin_proto.dir/unit/test_admin_proto.c.o.d"
  "test_admin_proto"
  "test_admin_proto.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_admin_proto.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
