/**
 * The fault matrix (fault-matrix.ts) for the helper-instance strategy: every lifecycle, a fault of each
 * kind at every call the handler makes in it. The two longest lifecycles run in files of their own
 * (fault-matrix-helper-instance-rebuild.test.ts, -rollback.test.ts), so that jest's workers share the
 * matrix; this file runs the others.
 */
import { LIFECYCLES } from '../../fixtures/lifecycle';
import { defineMatrix } from './fault-matrix';

defineMatrix('helper-instance', LIFECYCLES, LIFECYCLES.filter((lifecycle) => lifecycle !== 'rebuild' && lifecycle !== 'rollback'));
