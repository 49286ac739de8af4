export * from './gen/strata/v1/layer';
export * from './gen/strata/v1/projection';
export * from './gen/strata/v1/session';
export * from './gen/strata/v1/diff';
export { ErrorInfo } from './gen/strata/v1/errors';
export { toServiceError, fromServiceError, errorInfoOf, strataErrorFromInfo } from './status-details';
