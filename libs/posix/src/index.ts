export * from './file-mode';
