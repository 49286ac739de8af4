{
  "targets": [
    {
      "target_name": "fuse_kernel",
      "sources": [
        "native/addon.cc",
        "native/packed.cc",
        "native/js-events.cc",
        "native/mount.cc",
        "native/connection.cc",
        "native/notifier.cc",
        "native/dispatch.cc",
        "native/opcodes.cc",
        "native/js-bridge.cc",
        "native/send.cc",
        "native/replies.cc",
        "native/handlers-node.cc",
        "native/handlers-file.cc",
        "native/handlers-dir.cc",
        "native/handlers-xattr.cc",
        "native/handlers-control.cc",
        "native/stats.cc",
        "native/cache.cc",
        "native/peer-cred.cc",
        "native/sd-notify.cc",
        "native/adopt.cc",
        "native/fd-passing.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_DISABLE_CPP_EXCEPTIONS"
      ],
      "cflags_cc": [
        "-std=c++17",
        "-O2",
        "-Wall",
        "-Wextra",
        "-Wno-unused-parameter"
      ]
    },
    {
      "target_name": "strata-fd-holder",
      "type": "executable",
      "sources": [
        "native/holder/main.cc",
        "native/holder/log.cc",
        "native/holder/protocol.cc",
        "native/holder/packet-io.cc",
        "native/holder/registry.cc",
        "native/holder/watchdog.cc",
        "native/holder/server.cc"
      ],
      "cflags_cc": [
        "-std=c++17",
        "-O2",
        "-Wall",
        "-Wextra"
      ]
    }
  ]
}
