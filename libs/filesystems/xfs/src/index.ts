export { Xfs } from './xfs';
export { xfsDriver } from './driver';
