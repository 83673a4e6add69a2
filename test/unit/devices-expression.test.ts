import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileExpression, evaluateExpression, ExpressionError } from '../../src/devices/domain/expression.ts';

// The measures of the iotagent-node-lib "Examples of JEXL expressions" table.
const ctx = { value: 6, ts: 1637245214901, name: 'DevId629', object: { name: 'John', surname: 'Doe' }, array: [1, 3] };

test('FIWARE doc expression table', () => {
  assert.equal(evaluateExpression('5 * value', ctx), 30);
  assert.equal(evaluateExpression('(6 + value) * 3', ctx), 36);
  assert.equal(evaluateExpression('value / 12 + 1', ctx), 1.5);
  assert.equal(evaluateExpression('(5 + 2) * (value + 7)', ctx), 91);
  assert.equal(evaluateExpression('value * 5.2', ctx), 31.200000000000003);
  assert.equal(evaluateExpression('"Pruebas " + "De Strings"', ctx), 'Pruebas De Strings');
  assert.equal(evaluateExpression('name + "value is " +value', ctx), 'DevId629value is 6');
  assert.deepEqual(evaluateExpression("{coordinates: [value,value], type: 'Point'}", ctx), { coordinates: [6, 6], type: 'Point' });
  assert.equal(evaluateExpression('ts|toisodate', ctx), '2021-11-18T14:20:14.901Z');
  assert.equal(evaluateExpression('" a "| trim', ctx), 'a');
  assert.equal(evaluateExpression('name|length', ctx), 8);
  assert.equal(evaluateExpression('name|indexOf("e")', ctx), 1);
  assert.equal(evaluateExpression('name|substr(0,name|indexOf("e")+1)', ctx), 'De');
});

test('chained transforms and indexing (FIWARE "multiple transformations")', () => {
  assert.equal(evaluateExpression("variable | trim | replacestr('hello','hi')", { variable: ' hello world ' }), 'hi world');
  assert.equal(evaluateExpression("location | split(', ')[1] | parsefloat()", { location: '40.4165, -3.70256' }), -3.70256);
});

test('operators, member access, ternary, in', () => {
  assert.equal(evaluateExpression('object.name + " " + object.surname', ctx), 'John Doe');
  assert.equal(evaluateExpression('array[1] ^ 2', ctx), 9);
  assert.equal(evaluateExpression('value > 5 ? "high" : "low"', ctx), 'high');
  assert.equal(evaluateExpression('value >= 7 && true || "x"', ctx), 'x');
  assert.equal(evaluateExpression('3 in array', ctx), true);
  assert.equal(evaluateExpression('"Dev" in name', ctx), true);
  assert.equal(evaluateExpression('7 // 2 + 7 % 2', ctx), 4);
  assert.equal(evaluateExpression('-value + +"2"', ctx), -4);
  assert.equal(evaluateExpression('!missing', ctx), true);
  assert.equal(evaluateExpression('missing * 2', ctx), NaN);
  assert.equal(evaluateExpression('array|addreduce', ctx), 4);
  assert.equal(evaluateExpression("value|mapper([2,6],['a','b'])", ctx), 'b');
  assert.equal(evaluateExpression("value|thmapper([5,10],['low','mid'])", ctx), 'mid');
  assert.equal(evaluateExpression("'484F4C41'|hextostring", ctx), 'HOLA');
  assert.equal(evaluateExpression('now()', ctx, { now: () => 42 }), 42);
  assert.equal(evaluateExpression('level / 100', { level: '85.3' }), 0.853);
});

test('variables are reported for evaluability checks', () => {
  assert.deepEqual(compileExpression('{coordinates: [longitude,latitude], type: "Point"}').variables.sort(), ['latitude', 'longitude']);
});

test('no escape to the host: prototypes and constructors are unreachable', () => {
  assert.equal(evaluateExpression('name.constructor', ctx), undefined);
  assert.equal(evaluateExpression('object.__proto__', ctx), undefined);
  assert.equal(evaluateExpression("object['constructor']", ctx), undefined);
  assert.equal(evaluateExpression('toString', ctx), undefined);
  assert.equal(evaluateExpression('name.toString', ctx), undefined);
  assert.throws(() => compileExpression('{__proto__: 1}'), ExpressionError);
  assert.throws(() => compileExpression('process.exit(1)'), ExpressionError); // not a known transform
  assert.throws(() => compileExpression('eval("1")'), ExpressionError);
  assert.throws(() => evaluateExpression("name|replaceregexp('(a+)+$', 'x')", ctx), ExpressionError);
});

test('syntax errors are ExpressionErrors with a position', () => {
  for (const bad of ['1 +', '(1', '{a 1}', '"open', 'a |', '1 # 2', '[1,,2]', 'a ? b'])
    assert.throws(() => compileExpression(bad), ExpressionError, bad);
  assert.throws(() => compileExpression('('.repeat(200) + '1' + ')'.repeat(200)), /nested too deeply/);
  assert.throws(() => compileExpression('1+'.repeat(3000) + '1'), /longer than/);
});

test('transform errors yield no value instead of throwing', () => {
  assert.equal(evaluateExpression('x|jsonparse', { x: '{bad' }), undefined);
  assert.equal(evaluateExpression('x|addreduce', { x: 'notarray' }), undefined);
});
