/*-------------------------------------------------------------------------
 *
 * identity.h
 *	  The cluster behind each participant server, recorded at first use.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DTX_IDENTITY_H
#define DTX_IDENTITY_H

extern void DtxIdentityInit(void);
extern void DtxRecordFirstUses(void);
extern void DtxCheckServerIdentity(Oid serverid, const char *servername,
								   uint64 sysid, const char *dbname);

#endif							/* DTX_IDENTITY_H */
