export {
  parseQ,
  resolveQ,
  evaluateQ,
  qToSql,
  qLinkedDepth,
  qAttributes,
  toPosixRegex,
  Q_LIMITS,
  Q_INSTANCE_KEYS,
} from './q.ts';
export type {
  QExpr,
  QTerm,
  QPath,
  QOp,
  QScalar,
  QOperand,
  ResolvedQ,
  ResolvedNode,
  ResolvedTerm,
  ResolvedPath,
  ResolveQOptions,
  EvaluateQOptions,
  QToSqlOptions,
} from './q.ts';
export { parseScopeQ, evaluateScopeQ, scopeQToSql, SCOPEQ_LIMITS } from './scope.ts';
export type { ScopeExpr, ScopePattern } from './scope.ts';
export {
  parseTypeExpr,
  resolveTypeExpr,
  evaluateTypeExpr,
  typeExprToSql,
  simpleTypeList,
  TYPE_EXPR_LIMITS,
} from './type-expr.ts';
export type { TypeExpr } from './type-expr.ts';
export { instantMs, timeMs } from './temporal-values.ts';
