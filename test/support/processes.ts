export * from '@strata/harness';
