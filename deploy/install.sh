#!/usr/bin/env bash
# Installs a built strata checkout (`npm run build` first) at a fixed prefix:
#   PREFIX/lib/       bin/strata, the dist/ (and native addons) of the packages
#                     the resolver, the agent and the CLI load, their production
#                     node_modules and the .proto files of the API
#   PREFIX/bin/strata a wrapper that runs lib/bin/strata with the node this
#                     script ran with (systemd's PATH may hold another one)
# and, unless --no-systemd, the host part: the units in /etc/systemd/system
# (ExecStart is PREFIX/bin/strata), their configuration files
# /etc/strata/resolver.yaml and agent.yaml (only where there are none: an
# operator's are kept), /etc/strata/tls for the certificates they name, the
# Redis cache configuration for Debian's redis-server@strata-cache,
# /usr/local/bin/strata, the `strata` system user and the image store
# directories the resolver's file names. Nothing is enabled or started. See
# docs/deployment.md.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: deploy/install.sh [--prefix DIR] [--destdir DIR] [--no-systemd] [--no-check]
  --prefix DIR   where strata lives (default /opt/strata); the units are rewritten to it
  --destdir DIR  stage every file under DIR (packaging): no user, no store, no systemctl
  --no-systemd   only PREFIX (the tree and the wrapper): no units, Redis file, link, user
  --no-check     skip running the installed `strata ... --help` at the end
EOF
}

die() {
  echo "install.sh: $*" >&2
  exit 1
}

prefix=/opt/strata
destdir=
systemd=1
check=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#*=}; shift ;;
    --destdir) [ $# -ge 2 ] || die "--destdir needs a directory"; destdir=$2; shift 2 ;;
    --destdir=*) destdir=${1#*=}; shift ;;
    --no-systemd) systemd=0; shift ;;
    --no-check) check=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
case "$prefix" in /*) ;; *) die "--prefix must be an absolute path, got '$prefix'" ;; esac
prefix=${prefix%/}
[ -n "$prefix" ] || die "--prefix / would install over the root directory"
if [ -n "$destdir" ]; then
  mkdir -p "$destdir"
  destdir=$(cd "$destdir" && pwd)
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
for f in bin/strata services/resolver/dist/main.js services/agent/dist/main.js libs/cli/dist/main.js; do
  [ -e "$repo/$f" ] || die "$repo/$f is missing: run \`npm run build\` first"
done
node=$(command -v node) || die "node is not on PATH"
node=$(readlink -f "$node")
"$node" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
  die "$node is older than Node 20"
# engines (package.json) says >=22; Node 20 is past its end of life (README).
"$node" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 22 ? 0 : 1)' ||
  echo "install.sh: warning: $node is Node $("$node" -p 'process.versions.node'), past its end of life: strata supports 22 and 24 (the image runs 24)" >&2
if [ "$systemd" = 1 ] && [ -z "$destdir" ] && [ "$(id -u)" -ne 0 ]; then
  die "the host part needs root (or use --no-systemd, or --destdir to stage it)"
fi

root=$destdir$prefix
stage=$root/lib.new
rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/node_modules/@strata" "$root/bin"

# What the three entry points load, as npm resolved it: workspace packages
# (node_modules/@strata/* links) and the registry packages under them.
mapfile -t packages < <(cd "$repo" && npm ls --omit=dev --all --parseable \
  -w @strata/resolver -w @strata/agent -w @strata/cli 2>/dev/null || true)
found=0
for abs in "${packages[@]}"; do
  rel=${abs#"$repo"/}
  case "$rel" in
    node_modules/@strata/*)
      name=${rel#node_modules/@strata/}
      real=$(readlink -f "$abs")
      dir=${real#"$repo"/}
      [ -d "$repo/$dir/dist" ] || die "$dir is not built: run \`npm run build\` first"
      (cd "$repo" && cp -a --parents "$dir/package.json" "$dir/dist" "$stage/")
      # A native package's addon (node-gyp's build/Release/*.node), not its
      # objects; and its executables (strata-fd-holder: the agent's mounts
      # outlive it only with the holder beside the addon).
      if [ -d "$repo/$dir/build/Release" ]; then
        (cd "$repo" && find "$dir/build/Release" -maxdepth 1 \( -name '*.node' -o -name 'strata-fd-holder' \) -type f -exec cp -a --parents {} "$stage/" \;)
      fi
      ln -s "../../$dir" "$stage/node_modules/@strata/$name"
      found=$((found + 1))
      ;;
    node_modules/*/node_modules/*) ;; # copied with the package that holds it
    node_modules/*) (cd "$repo" && cp -a --parents "$rel" "$stage/") ;;
  esac
done
[ "$found" -ge 3 ] || die "npm ls listed no workspace packages (is npm on PATH, and $repo installed with npm ci?)"
find "$stage" -path '*/dist/*' \( -name '*.test.js' -o -name '*.test.js.map' -o -name '*.test.d.ts' \
  -o -name '*.test.d.ts.map' -o -name '*.tsbuildinfo' \) -delete
cp -a "$repo/bin/strata" "$stage/bin/strata"
# The resolver loads the API's .proto files at start (gRPC reflection).
(cd "$repo" && find proto -name '*.proto' -exec cp -a --parents {} "$stage/" \;)
cp -a "$repo/package.json" "$stage/package.json"
# Which commit this is (`strata version`, strata_build_info): from the checkout, or $STRATA_COMMIT (an image build without .git).
commit=${STRATA_COMMIT:-$(git -C "$repo" rev-parse HEAD 2>/dev/null || true)}
if [[ "$commit" =~ ^[0-9a-f]{40}$ ]]; then
  printf '{"commit":"%s"}\n' "$commit" >"$stage/build-info.json"
fi

# Swap the new tree in whole: running services keep the files they opened.
rm -rf "$root/lib.old"
[ -e "$root/lib" ] && mv "$root/lib" "$root/lib.old"
mv "$stage" "$root/lib"
rm -rf "$root/lib.old"

# The wrapper finds lib/ next to itself (also through a symlink, and in a
# --destdir staging copy) and execs node, so signals reach the service.
cat >"$root/bin/strata.new" <<EOF
#!/bin/sh
# Installed by deploy/install.sh: strata's tree is ../lib, run with $node.
here=\$(dirname "\$(readlink -f "\$0")")
exec "$node" "\$here/../lib/bin/strata" "\$@"
EOF
chmod 0755 "$root/bin/strata.new"
mv "$root/bin/strata.new" "$root/bin/strata"

if [ "$systemd" = 1 ]; then
  units=$destdir/etc/systemd/system
  mkdir -p "$units" "$destdir/etc/redis" "$destdir/usr/local/bin"
  for unit in strata-resolver.service strata-agent.service; do
    sed "s|/opt/strata/|$prefix/|g" "$repo/deploy/systemd/$unit" >"$units/$unit.new"
    chmod 0644 "$units/$unit.new"
    mv "$units/$unit.new" "$units/$unit"
  done
  install -m 0640 "$repo/deploy/systemd/redis-strata-cache.conf" "$destdir/etc/redis/redis-strata-cache.conf"
  # The units' configuration: the operator's own file is never replaced.
  install -d -m 0755 "$destdir/etc/strata"
  install -d -m 0750 "$destdir/etc/strata/tls"
  for role in resolver agent; do
    if [ ! -e "$destdir/etc/strata/$role.yaml" ]; then
      install -m 0644 "$repo/deploy/config/$role.yaml" "$destdir/etc/strata/$role.yaml"
    fi
  done
  ln -sfn "$prefix/bin/strata" "$destdir/usr/local/bin/strata"
  if [ -z "$destdir" ]; then
    # Debian's redis-server@ runs as redis and reads its file as that user.
    if id redis >/dev/null 2>&1; then chown redis:redis /etc/redis/redis-strata-cache.conf; fi
    if ! id strata >/dev/null 2>&1; then
      useradd --system --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin strata
    fi
    # The resolver (user strata) reads its key there; the agent runs as root.
    chgrp strata /etc/strata/tls
    # The resolver unit's store; the catalog under it is the one place it writes.
    install -d -m 0755 /srv/strata/store
    install -d -m 0755 -o strata -g strata /srv/strata/store/.strata
    if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
  fi
fi

if [ "$check" = 1 ]; then
  for args in "--help" "resolver --help" "agent --help"; do
    # shellcheck disable=SC2086 # word splitting of the arguments is wanted
    "$root/bin/strata" $args >/dev/null || die "the installed \`strata $args\` failed"
  done
fi
echo "strata installed at $root${destdir:+ (staged for $prefix)}"
