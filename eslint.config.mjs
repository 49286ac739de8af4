import { readdirSync } from 'node:fs';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// ---- Layers (docs/architecture.md, "Allowed dependencies") ----
// Each package gets one no-restricted-imports entry listing everything it may
// not import: flat config replaces a rule's options per file rather than
// merging them, so the lists are composed here, one config object per package.

/** Import specifiers (gitignore-style) that reach a package, by name or by a relative path into its sources. */
const reach = (name, dir) => [name, `${name}/**`, `**/${dir}/src/**`, `**/${dir}/dist/**`];

const GRPC_AND_PROTOCOL = {
  group: ['@grpc/*', '@bufbuild/*', ...reach('@strata/protocol', 'protocol'), ...reach('@strata/client', 'client')],
  message: 'The store, layer and traversal libraries stay free of gRPC and protocol code: the resolver converts at its boundary.',
};
const SERVICES = {
  group: [...reach('@strata/resolver', 'resolver'), ...reach('@strata/agent', 'agent'), '**/services/**'],
  message: 'Libraries never import a service: move what both need into a library.',
};
const serviceOthers = (others) => ({
  group: others.flatMap((other) => [...reach(`@strata/${other}`, other), `**/services/${other}/**`]),
  message: 'A service never imports another service: share code through a library.',
});

const packagesIn = (dir) =>
  readdirSync(new URL(`./${dir}/`, import.meta.url), { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name);

/**
 * The disk stack's groups: each folder holds one package per format, named
 * here by its path under libs/ (e.g. `filesystems/xfs`).
 */
const GROUPS = ['containers', 'volumes', 'filesystems'];
const libPackages = () => [
  ...packagesIn('libs').filter((lib) => !GROUPS.includes(lib)),
  ...GROUPS.flatMap((group) => packagesIn(`libs/${group}`).map((name) => `${group}/${name}`)),
];

/** Libraries whose code must not know about gRPC: the store, layer sources, traversal and disk formats. */
const STORE_LIBS = ['traversal', 'layers', 'posix', 'errors', 'cache', ...libPackages().filter((lib) => GROUPS.some((g) => lib.startsWith(`${g}/`)))];
/** Every other library, new ones included. */
const OTHER_LIBS = libPackages().filter((lib) => !STORE_LIBS.includes(lib));
const SERVICE_DIRS = packagesIn('services');

const restrict = (dir, patterns) => ({
  files: [`${dir}/**/*.ts`],
  rules: { 'no-restricted-imports': ['error', { patterns }] },
});

const layers = [
  ...STORE_LIBS.map((lib) => restrict(`libs/${lib}`, [GRPC_AND_PROTOCOL, SERVICES])),
  ...OTHER_LIBS.map((lib) => restrict(`libs/${lib}`, [SERVICES])),
  ...SERVICE_DIRS.map((svc) => restrict(`services/${svc}`, [serviceOthers(SERVICE_DIRS.filter((s) => s !== svc))])),
];

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'libs/protocol/src/gen/**', '**/*.js', '**/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  ...layers,
);
