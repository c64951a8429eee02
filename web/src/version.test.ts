import { releaseLine, versionSkew } from './version'

describe('versions', () => {
  it('reads major and minor from a version', () => {
    expect(releaseLine('0.1.0')).toEqual([0, 1])
    expect(releaseLine('12.34.5rc1')).toEqual([12, 34])
    expect(releaseLine('unknown')).toBeNull()
    expect(releaseLine(null)).toBeNull()
  })

  it('flags another major or minor, or no version, but not another patch', () => {
    expect(versionSkew('0.1.9', '0.1.0')).toBe(false)
    expect(versionSkew('0.2.0', '0.1.0')).toBe(true)
    expect(versionSkew('1.1.0', '0.1.0')).toBe(true)
    expect(versionSkew(null, '0.1.0')).toBe(true)
    expect(versionSkew('0.2.0', undefined)).toBe(false)
  })
})
