
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/src/auth/accounts.c" "CMakeFiles/magpie.dir/src/auth/accounts.c.o" "gcc" "CMakeFiles/magpie.dir/src/auth/accounts.c.o.d"
  "/work/main/src/auth/sasl.c" "CMakeFiles/magpie.dir/src/auth/sasl.c.o" "gcc" "CMakeFiles/magpie.dir/src/auth/sasl.c.o.d"
  "/work/main/src/auth/scram.c" "CMakeFiles/magpie.dir/src/auth/scram.c.o" "gcc" "CMakeFiles/magpie.dir/src/auth/scram.c.o.d"
  "/work/main/src/base/arena.c" "CMakeFiles/magpie.dir/src/base/arena.c.o" "gcc" "CMakeFiles/magpie.dir/src/base/arena.c.o.d"
  "/work/main/src/base/buf.c" "CMakeFiles/magpie.dir/src/base/buf.c.o" "gcc" "CMakeFiles/magpie.dir/src/base/buf.c.o.d"
  "/work/main/src/base/config.c" "CMakeFiles/magpie.dir/src/base/config.c.o" "gcc" "CMakeFiles/magpie.dir/src/base/config.c.o.d"
  "/work/main/src/base/htab.c" "CMakeFiles/magpie.dir/src/base/htab.c.o" "gcc" "CMakeFiles/magpie.dir/src/base/htab.c.o.d"
  "/work/main/src/base/log.c" "CMakeFiles/magpie.dir/src/base/log.c.o" "gcc" "CMakeFiles/magpie.dir/src/base/log.c.o.d"
  "/work/main/src/base/rand.c" "CMakeFiles/magpie.dir/src/base/rand.c.o" "gcc" "CMakeFiles/magpie.dir/src/base/rand.c.o.d"
  "/work/main/src/link/ring.c" "CMakeFiles/magpie.dir/src/link/ring.c.o" "gcc" "CMakeFiles/magpie.dir/src/link/ring.c.o.d"
  "/work/main/src/modules/builtin.c" "CMakeFiles/magpie.dir/src/modules/builtin.c.o" "gcc" "CMakeFiles/magpie.dir/src/modules/builtin.c.o.d"
  "/work/main/src/modules/disco.c" "CMakeFiles/magpie.dir/src/modules/disco.c.o" "gcc" "CMakeFiles/magpie.dir/src/modules/disco.c.o.d"
  "/work/main/src/modules/ping.c" "CMakeFiles/magpie.dir/src/modules/ping.c.o" "gcc" "CMakeFiles/magpie.dir/src/modules/ping.c.o.d"
  "/work/main/src/modules/session.c" "CMakeFiles/magpie.dir/src/modules/session.c.o" "gcc" "CMakeFiles/magpie.dir/src/modules/session.c.o.d"
  "/work/main/src/modules/version.c" "CMakeFiles/magpie.dir/src/modules/version.c.o" "gcc" "CMakeFiles/magpie.dir/src/modules/version.c.o.d"
  "/work/main/src/mux/mux.c" "CMakeFiles/magpie.dir/src/mux/mux.c.o" "gcc" "CMakeFiles/magpie.dir/src/mux/mux.c.o.d"
  "/work/main/src/router/admin.c" "CMakeFiles/magpie.dir/src/router/admin.c.o" "gcc" "CMakeFiles/magpie.dir/src/router/admin.c.o.d"
  "/work/main/src/router/core.c" "CMakeFiles/magpie.dir/src/router/core.c.o" "gcc" "CMakeFiles/magpie.dir/src/router/core.c.o.d"
  "/work/main/src/router/iq.c" "CMakeFiles/magpie.dir/src/router/iq.c.o" "gcc" "CMakeFiles/magpie.dir/src/router/iq.c.o.d"
  "/work/main/src/router/route.c" "CMakeFiles/magpie.dir/src/router/route.c.o" "gcc" "CMakeFiles/magpie.dir/src/router/route.c.o.d"
  "/work/main/src/router/stream.c" "CMakeFiles/magpie.dir/src/router/stream.c.o" "gcc" "CMakeFiles/magpie.dir/src/router/stream.c.o.d"
  "/work/main/src/router/throttle.c" "CMakeFiles/magpie.dir/src/router/throttle.c.o" "gcc" "CMakeFiles/magpie.dir/src/router/throttle.c.o.d"
  "/work/main/src/storage/sqlite/sqlite_store.c" "CMakeFiles/magpie.dir/src/storage/sqlite/sqlite_store.c.o" "gcc" "CMakeFiles/magpie.dir/src/storage/sqlite/sqlite_store.c.o.d"
  "/work/main/src/storage/store.c" "CMakeFiles/magpie.dir/src/storage/store.c.o" "gcc" "CMakeFiles/magpie.dir/src/storage/store.c.o.d"
  "/work/main/src/stream/tls.c" "CMakeFiles/magpie.dir/src/stream/tls.c.o" "gcc" "CMakeFiles/magpie.dir/src/stream/tls.c.o.d"
  "/work/main/src/xml/escape.c" "CMakeFiles/magpie.dir/src/xml/escape.c.o" "gcc" "CMakeFiles/magpie.dir/src/xml/escape.c.o.d"
  "/work/main/src/xml/framer.c" "CMakeFiles/magpie.dir/src/xml/framer.c.o" "gcc" "CMakeFiles/magpie.dir/src/xml/framer.c.o.d"
  "/work/main/src/xml/tree.c" "CMakeFiles/magpie.dir/src/xml/tree.c.o" "gcc" "CMakeFiles/magpie.dir/src/xml/tree.c.o.d"
  "/work/main/src/xmpp/jid.c" "CMakeFiles/magpie.dir/src/xmpp/jid.c.o" "gcc" "CMakeFiles/magpie.dir/src/xmpp/jid.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
