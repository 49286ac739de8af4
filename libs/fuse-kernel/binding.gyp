{
  "targets": [
    {
      "target_name": "fuse_kernel",
      "sources": ["native/addon.cc", "native/session.cc", "native/cache.cc", "native/peer-cred.cc", "native/sd-notify.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
