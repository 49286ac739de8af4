export { buildDemoStore } from './build-demo-store';
export type { DemoStore } from './build-demo-store';
