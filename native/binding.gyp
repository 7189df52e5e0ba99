{
  "targets": [
    {
      "target_name": "roam_native",
      "sources": ["src/dirty_tracker.c", "src/populate.c", "src/postcopy.c", "src/uffd.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        ["OS=='mac'", {
          "xcode_settings": { "OTHER_CFLAGS": ["-std=gnu11", "-O2", "-Wall"] }
        }]
      ]
    }
  ]
}
