/**
 * The fault matrix (fault-matrix.ts) for the helper-instance strategy, the rebuild lifecycle: a file of
 * its own so that jest's workers share the matrix (fault-matrix-helper-instance.test.ts runs the
 * other lifecycles).
 */
import { LIFECYCLES } from '../../fixtures/lifecycle';
import { defineMatrix } from './fault-matrix';

defineMatrix('helper-instance', LIFECYCLES, ['rebuild']);
