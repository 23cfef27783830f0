// Writes JSON log lines with real pino or winston to a file, for Bellwether's end-to-end
// test of JSON logger errors: `node emit.js pino|winston FILE`.
//
// Each logger writes, in its documented JSON setup: info lines, an error with a cause
// chain, an AggregateError, and a TypeError and a RangeError with one message.
'use strict';

const [, , logger, file] = process.argv;
if (!file || !['pino', 'winston'].includes(logger)) {
  console.error('usage: node emit.js pino|winston FILE');
  process.exit(2);
}

class PaymentError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'PaymentError';
  }
}

function causeChain() {
  const refused = new Error('connect ECONNREFUSED 10.0.0.5:5432');
  refused.code = 'ECONNREFUSED';
  const query = new Error('query on payments failed', { cause: refused });
  return new PaymentError('charge failed for order 42', { cause: query });
}

function aggregate() {
  return new AggregateError(
    [new TypeError('upload 1 has no body'), new RangeError('upload 2 is too large')],
    'all uploads failed',
  );
}

// Two errors with one message and different types: two issues.
const sameMessage = 'quota value 17 is invalid';
const typed = [new TypeError(sameMessage), new RangeError(sameMessage)];

function withPino(done) {
  const pino = require('pino');
  const destination = pino.destination({ dest: file, sync: true });
  const log = pino({}, destination);
  log.info('service started');
  log.error(causeChain(), 'checkout failed');
  log.error({ err: aggregate() }, 'uploads failed');
  for (const err of typed) {
    log.error(err, 'quota rejected');
  }
  log.info({ orders: 3 }, 'service stopping');
  destination.flushSync();
  done();
}

function withWinston(done) {
  const winston = require('winston');
  const log = winston.createLogger({
    level: 'info',
    format: winston.format.combine(
      winston.format.timestamp(),
      winston.format.errors({ stack: true }),
      winston.format.json(),
    ),
    transports: [new winston.transports.File({ filename: file })],
  });
  log.info('service started');
  log.error(causeChain());
  log.error(aggregate());
  for (const err of typed) {
    log.error(err);
  }
  log.info('service stopping', { orders: 3 });
  log.on('finish', done);
  log.end();
}

(logger === 'pino' ? withPino : withWinston)(() => {});
