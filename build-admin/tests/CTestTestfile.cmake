# CMake generated Testfile for 
# Source directory: /work/main/tests
# Build directory: /work/main/build-admin/tests
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
add_test([=[unit.test_admin_proto]=] "/work/main/build-admin/tests/test_admin_proto")
set_tests_properties([=[unit.test_admin_proto]=] PROPERTIES  ENVIRONMENT "MP_TEST_DATA=/work/main/tests/data" TIMEOUT "120" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;9;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[unit.test_arena]=] "/work/main/build-admin/tests/test_arena")
set_tests_properties([=[unit.test_arena]=] PROPERTIES  ENVIRONMENT "MP_TEST_DATA=/work/main/tests/data" TIMEOUT "120" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;9;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[unit.test_config]=] "/work/main/build-admin/tests/test_config")
set_tests_properties([=[unit.test_config]=] PROPERTIES  ENVIRONMENT "MP_TEST_DATA=/work/main/tests/data" TIMEOUT "120" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;9;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[unit.test_framer]=] "/work/main/build-admin/tests/test_framer")
set_tests_properties([=[unit.test_framer]=] PROPERTIES  ENVIRONMENT "MP_TEST_DATA=/work/main/tests/data" TIMEOUT "120" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;9;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[unit.test_htab]=] "/work/main/build-admin/tests/test_htab")
set_tests_properties([=[unit.test_htab]=] PROPERTIES  ENVIRONMENT "MP_TEST_DATA=/work/main/tests/data" TIMEOUT "120" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;9;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[unit.test_jid]=] "/work/main/build-admin/tests/test_jid")
set_tests_properties([=[unit.test_jid]=] PROPERTIES  ENVIRONMENT "MP_TEST_DATA=/work/main/tests/data" TIMEOUT "120" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;9;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[unit.test_sasl]=] "/work/main/build-admin/tests/test_sasl")
set_tests_properties([=[unit.test_sasl]=] PROPERTIES  ENVIRONMENT "MP_TEST_DATA=/work/main/tests/data" TIMEOUT "120" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;9;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[unit.test_scram]=] "/work/main/build-admin/tests/test_scram")
set_tests_properties([=[unit.test_scram]=] PROPERTIES  ENVIRONMENT "MP_TEST_DATA=/work/main/tests/data" TIMEOUT "120" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;9;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[unit.test_store]=] "/work/main/build-admin/tests/test_store")
set_tests_properties([=[unit.test_store]=] PROPERTIES  ENVIRONMENT "MP_TEST_DATA=/work/main/tests/data" TIMEOUT "120" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;9;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[unit.test_tls]=] "/work/main/build-admin/tests/test_tls")
set_tests_properties([=[unit.test_tls]=] PROPERTIES  ENVIRONMENT "MP_TEST_DATA=/work/main/tests/data" TIMEOUT "120" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;9;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[unit.test_tree]=] "/work/main/build-admin/tests/test_tree")
set_tests_properties([=[unit.test_tree]=] PROPERTIES  ENVIRONMENT "MP_TEST_DATA=/work/main/tests/data" TIMEOUT "120" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;9;add_test;/work/main/tests/CMakeLists.txt;0;")
subdirs("integration")
