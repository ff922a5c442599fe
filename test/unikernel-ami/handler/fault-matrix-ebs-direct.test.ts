/**
 * The fault matrix (fault-matrix.ts) for the ebs-direct strategy: every lifecycle, a fault of each
 * kind at every call the handler makes in it.
 */
import { LIFECYCLES } from '../../fixtures/lifecycle';
import { defineMatrix } from './fault-matrix';

defineMatrix('ebs-direct', LIFECYCLES);
