/** NGSI-LD error types (ETSI GS CIM 009 clause 5.5.2) with their HTTP statuses. */
export const ErrorTypes = {
  InvalidRequest: { uri: 'https://uri.etsi.org/ngsi-ld/errors/InvalidRequest', status: 400 },
  BadRequestData: { uri: 'https://uri.etsi.org/ngsi-ld/errors/BadRequestData', status: 400 },
  AlreadyExists: { uri: 'https://uri.etsi.org/ngsi-ld/errors/AlreadyExists', status: 409 },
  OperationNotSupported: { uri: 'https://uri.etsi.org/ngsi-ld/errors/OperationNotSupported', status: 422 },
  ResourceNotFound: { uri: 'https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound', status: 404 },
  InternalError: { uri: 'https://uri.etsi.org/ngsi-ld/errors/InternalError', status: 500 },
  TooComplexQuery: { uri: 'https://uri.etsi.org/ngsi-ld/errors/TooComplexQuery', status: 403 },
  TooManyResults: { uri: 'https://uri.etsi.org/ngsi-ld/errors/TooManyResults', status: 403 },
  LdContextNotAvailable: { uri: 'https://uri.etsi.org/ngsi-ld/errors/LdContextNotAvailable', status: 504 },
  NoMultiTenantSupport: { uri: 'https://uri.etsi.org/ngsi-ld/errors/NoMultiTenantSupport', status: 501 },
  NonexistentTenant: { uri: 'https://uri.etsi.org/ngsi-ld/errors/NonexistentTenant', status: 404 },
  Unauthorized: { uri: 'https://uri.etsi.org/ngsi-ld/errors/Unauthorized', status: 401 },
  Forbidden: { uri: 'https://uri.etsi.org/ngsi-ld/errors/Forbidden', status: 403 },
  Conflict: { uri: 'https://uri.etsi.org/ngsi-ld/errors/Conflict', status: 409 },
  NotAcceptable: { uri: 'https://uri.etsi.org/ngsi-ld/errors/NotAcceptable', status: 406 },
  UnsupportedMediaType: { uri: 'https://uri.etsi.org/ngsi-ld/errors/UnsupportedMediaType', status: 415 },
  PayloadTooLarge: { uri: 'https://uri.etsi.org/ngsi-ld/errors/PayloadTooLarge', status: 413 },
  TooManyRequests: { uri: 'https://uri.etsi.org/ngsi-ld/errors/TooManyRequests', status: 429 },
} as const;

export type ErrorType = keyof typeof ErrorTypes;

export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail?: string;
  [extra: string]: unknown;
}

/** An error that maps to an RFC 7807 ProblemDetails response. */
export class ProblemError extends Error {
  readonly kind: ErrorType;
  readonly status: number;
  readonly extra?: Record<string, unknown>;
  constructor(kind: ErrorType, detail: string, extra?: Record<string, unknown>, status?: number) {
    super(detail);
    this.kind = kind;
    this.status = status ?? ErrorTypes[kind].status;
    this.extra = extra;
  }
  toProblem(): ProblemDetails {
    return {
      type: ErrorTypes[this.kind].uri,
      title: titleOf(this.kind),
      status: this.status,
      detail: this.message,
      ...this.extra,
    };
  }
}

function titleOf(kind: ErrorType): string {
  return kind.replace(/([a-z])([A-Z])/g, '$1 $2');
}

export const badRequest = (detail: string) => new ProblemError('BadRequestData', detail);
export const invalidRequest = (detail: string) => new ProblemError('InvalidRequest', detail);
export const notFound = (detail: string) => new ProblemError('ResourceNotFound', detail);
