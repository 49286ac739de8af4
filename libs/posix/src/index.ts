export * from './file-mode';
export * from './atomic-write';
