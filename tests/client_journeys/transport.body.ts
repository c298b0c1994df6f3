// Body transport: the access token as a bearer header; the session's id and secret, and
// the latest access token, in the refresh body.
import { client } from './client/client.gen';
import { authRefresh } from './client/sdk.gen';
import type { TokenResponse } from './client/types.gen';

export function useSession(session: TokenResponse): void {
  client.setConfig({ auth: () => session.access_token });
}

export const refresh = (session: TokenResponse) =>
  authRefresh({
    body: {
      session_id: session.session_id,
      session_secret: session.session_secret,
      access_token: session.access_token,
    },
  });
