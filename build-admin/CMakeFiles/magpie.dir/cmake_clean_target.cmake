file(REMOVE_RECURSE
  "libmagpie.a"
)
