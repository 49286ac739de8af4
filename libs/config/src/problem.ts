import { Errno, GrpcCode, StrataError } from '@strata/errors';

/** One thing wrong with the configuration: where (a flag, a variable, file:line and key) and what. */
export interface Problem {
  where: string;
  message: string;
}

export function formatProblem(p: Problem): string {
  return `${p.where}: ${p.message}`;
}

/** Every problem found, not just the first: an operator fixes a file in one go. */
export class ConfigError extends StrataError {
  readonly problems: readonly Problem[];

  constructor(problems: readonly Problem[]) {
    super(Errno.EINVAL, problems.map(formatProblem).join('; '), { code: GrpcCode.INVALID_ARGUMENT });
    this.name = 'ConfigError';
    this.problems = problems;
  }

  /** One line per problem, as the services print them. */
  get lines(): string[] {
    return this.problems.map(formatProblem);
  }
}
