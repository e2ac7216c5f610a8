// The cache key of a batch: the same in both tiers, and in the build worker that encodes the
// batch's disk value. The fingerprint comes first, so a dataset's keys share a prefix.
export function batchKey (fingerprint: string, epoch: number, rank: number, index: number, format: string): string {
  return `${fingerprint}/${epoch}/${rank}/${index}/${format}`
}
