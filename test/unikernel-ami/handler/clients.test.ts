import { clients } from '../../../lib/unikernel-ami/handler/clients';

describe('the handler\'s SDK clients', () => {
  test('S3 follows a 301 region redirect (a kernel bucket of another region) instead of failing', () => {
    expect(clients.s3.config.followRegionRedirects).toBe(true);
  });

  test('every client gives up on a lost response (requestTimeout), so that the handler retries instead of hanging', async () => {
    for (const client of [clients.ec2, clients.s3, clients.ssm, clients.ebs, clients.kms]) {
      const handler = client.config.requestHandler as { configProvider?: Promise<{ requestTimeout?: number }> } & { config?: { requestTimeout?: number } };
      const config = handler.configProvider ? await handler.configProvider : handler.config;
      expect(config?.requestTimeout).toBe(60_000);
    }
  });
});
