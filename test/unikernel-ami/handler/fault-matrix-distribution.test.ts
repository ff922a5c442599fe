/**
 * The fault matrix (fault-matrix.ts) for issue 17's lifecycles (DISTRIBUTION_LIFECYCLES: every
 * option on the Create, then an in-place update of each, a rename, a rename rolled back, the Delete
 * of a protected AMI, RETAIN with cooldown): a fault of each kind at every call the handler makes
 * in them, the new calls included. EBS direct only: what these lifecycles add (distribution.ts, the
 * rename, the shared snapshot's Delete) runs after the snapshot exists, the same for both strategies.
 */
import { DISTRIBUTION_LIFECYCLES, Lifecycle } from '../../fixtures/lifecycle';
import { defineMatrix } from './fault-matrix';

defineMatrix('ebs-direct', Object.keys(DISTRIBUTION_LIFECYCLES) as Lifecycle[], undefined, 'ebs-direct, issue 17 (naming, sharing, deprecation, protection)');
