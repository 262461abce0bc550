import type { RoomService } from '../rooms/roomService.js';
import type { ServiceDeps } from '../serviceDeps.js';
import type { UserService } from '../users/userService.js';
import { LoginTokenService } from './loginTokens.js';
import { OpenIdService } from './openid.js';
import { PublicRoomsService } from './publicRooms.js';
import { ReportService } from './reports.js';
import { TagService } from './tags.js';
import { ThirdPartyLookup } from './thirdParty.js';
import { UserDirectoryService } from './userDirectory.js';

// Discovery and account extras: the published room directory, the user directory, room tags, reports,
// OpenID tokens, login tokens and the third-party lookup hook.
export interface DirectoryServices {
  publicRooms: PublicRoomsService;
  userDirectory: UserDirectoryService;
  tags: TagService;
  reports: ReportService;
  openId: OpenIdService;
  loginTokens: LoginTokenService;
  thirdParty: ThirdPartyLookup;
}

export function createDirectory(deps: ServiceDeps, others: { rooms: RoomService; users: UserService }): DirectoryServices {
  const loginTokens = new LoginTokenService(deps);
  // Spec v1.7: the flow says whether this server lets an existing session issue login tokens.
  others.users.login.addLoginType('m.login.token', (body) => loginTokens.login(body), {
    get_login_token: deps.config.login_via_existing_session.enabled,
  });
  return {
    publicRooms: new PublicRoomsService({ ...deps, rooms: others.rooms }),
    userDirectory: new UserDirectoryService(deps),
    tags: new TagService(deps),
    reports: new ReportService({ ...deps, rooms: others.rooms }),
    openId: new OpenIdService(deps),
    loginTokens,
    thirdParty: new ThirdPartyLookup(),
  };
}
