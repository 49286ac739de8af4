export { Resolver } from './resolver';
export type { ResolverOptions } from './resolver';
export { main } from './main';
