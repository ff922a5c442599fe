/**
 * Tags given with `Tags.of(...)` reach the AMI and its snapshot: the synthesized template's custom
 * resource properties (the IAM proof's stack, which tags the whole stack), resolved for one
 * deployment, build an AMI on the fake AWS account with each strategy, and both carry the tag beside
 * the build's own tags.
 */
import { MANAGED_TAG } from '../../lib/unikernel-ami/types';
import { createEvent } from '../fixtures/custom-resource';
import { useFakeAws } from '../fixtures/fake-aws';
import { completeRequest, DEFAULT_KERNEL } from '../fixtures/lifecycle';
import { addTemplateResources, putKernel } from '../iam/proof-account';
import { Proof, synthesizeProofStack } from '../iam/proof-stack';

const { aws } = useFakeAws();
let proof: Proof;

beforeAll(() => {
  proof = synthesizeProofStack({ minimizePolicies: false });
});

beforeEach(() => addTemplateResources(aws, proof));

test.each(['HelperT1', 'DirectFromBucket', 'DirectEncrypted'] as const)('%s: the stack\'s tag is on the AMI and its snapshot', async (unikernel) => {
  const properties = proof.properties[unikernel];
  // The tag the proof stack gives with Tags.of(stack), as the handler receives it.
  expect(properties.Tags).toEqual({ project: 'unikernels' });
  putKernel(aws, properties, DEFAULT_KERNEL);
  const { done } = await completeRequest(aws, createEvent(properties));
  const { ImageId, SnapshotId } = done.Data as { ImageId: string; SnapshotId: string };
  for (const id of [ImageId, SnapshotId]) {
    expect({ id, tags: aws.tagsOf(id) }).toEqual({ id, tags: expect.objectContaining({ project: 'unikernels', [MANAGED_TAG]: 'true' }) });
  }
});
