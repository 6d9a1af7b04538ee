// The ping service, host side: answers each ping with the same bytes, end to end.
import { ErrorCode } from '../../protocol/errors.js';
import { PING_HEADER_BYTES, PING_MAX_BYTES, PingType } from '../../client/services/ping.js';
import type { HostService } from './service.js';

export const pingService: HostService = {
  name: 'ping',
  serve({ channel, access }) {
    // Liveness and round-trip times are for those the host lets in without asking.
    if (access === 'deny' || access === 'ask') {
      void channel.close(
        'ping is for the owner and the --allow and --viewers users',
        ErrorCode.NOT_ALLOWED,
      );
      return;
    }
    channel.setHandlers({
      onMessage(message) {
        if (
          message[0] !== PingType.PING ||
          message.length < PING_HEADER_BYTES ||
          message.length > PING_MAX_BYTES
        ) {
          void channel.close('not a ping', ErrorCode.INVALID_MESSAGE);
          return;
        }
        const pong = new Uint8Array(message);
        pong[0] = PingType.PONG;
        channel.send(pong);
      },
      onClose() {},
    });
  },
};
