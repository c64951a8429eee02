/** The optional API token: kept in localStorage, announced to whoever listens. */
import { useSyncExternalStore } from 'react'

const TOKEN_KEY = 'sd.token'

type Listener = () => void
const tokenListeners = new Set<Listener>()
const unauthorizedListeners = new Set<Listener>()

export function getToken(): string | null {
  try {
    return localStorage.getItem(TOKEN_KEY)
  } catch {
    return null
  }
}

export function setToken(token: string | null): void {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token)
    else localStorage.removeItem(TOKEN_KEY)
  } catch {
    // Private mode without storage: the token lives for this page only.
  }
  tokenListeners.forEach((listener) => listener())
}

export function onTokenChange(listener: Listener): () => void {
  tokenListeners.add(listener)
  return () => {
    tokenListeners.delete(listener)
  }
}

/** Called by the fetch helpers and the event stream when the coordinator answers 401. */
export function reportUnauthorized(): void {
  unauthorizedListeners.forEach((listener) => listener())
}

export function onUnauthorized(listener: Listener): () => void {
  unauthorizedListeners.add(listener)
  return () => {
    unauthorizedListeners.delete(listener)
  }
}

/** `url` with `?token=` added when a token is set: for EventSource, <img> and download links. */
export function withToken(url: string): string {
  const token = getToken()
  if (!token) return url
  return `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`
}

/** The current token, re-rendering the caller when it changes. */
export const useToken = (): string | null => useSyncExternalStore(onTokenChange, getToken)
