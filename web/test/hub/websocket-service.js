// A stand-in for the notification hub's frontend, unchanged: its WebSocketService, in plain JS.
// It knows nothing of jobcast. It opens `wss://host/ws` (the browser attaches the
// `access_token` cookie; `token` puts it on the URL as `?token=` instead), reads every message
// as `{type, payload, timestamp}` and hands it to the listeners registered for its `type`. It
// never sends a frame. When the socket closes it reconnects, waiting longer each time.

export const MESSAGE_TYPES = ["project_progress", "project_completed", "notification", "alert", "update"];

export class WebSocketService {
  /**
   * @param {string} url `wss://host/ws`
   * @param {{token?: string, reconnectInterval?: number, maxReconnectInterval?: number, maxReconnectAttempts?: number}} [options]
   */
  constructor(url, { token, reconnectInterval = 1000, maxReconnectInterval = 30000, maxReconnectAttempts = 10 } = {}) {
    this.url = url;
    this.token = token;
    this.reconnectInterval = reconnectInterval;
    this.maxReconnectInterval = maxReconnectInterval;
    this.maxReconnectAttempts = maxReconnectAttempts;
    this.ws = null;
    this.reconnectAttempts = 0;
    this.reconnectTimer = null;
    this.manuallyClosed = false;
    this.status = "disconnected";
    /** @type {Map<string, Set<(message: {type: string, payload: any, timestamp: string}) => void>>} */
    this.listeners = new Map();
    /** @type {Set<(status: string) => void>} */
    this.statusListeners = new Set();
  }

  connect() {
    if (this.ws && (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)) return;
    this.manuallyClosed = false;
    this.setStatus("connecting");
    const url = this.token ? `${this.url}${this.url.includes("?") ? "&" : "?"}token=${encodeURIComponent(this.token)}` : this.url;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.reconnectAttempts = 0;
      this.setStatus("connected");
    };
    ws.onmessage = (event) => this.handleMessage(event.data);
    ws.onerror = (event) => {
      console.warn("[WebSocket] error", event.type);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.setStatus("disconnected");
      if (!this.manuallyClosed && event.code !== 1000) this.scheduleReconnect();
    };
  }

  disconnect() {
    this.manuallyClosed = true;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.ws?.close(1000, "client disconnect");
  }

  /** Registers `callback` for messages of `type`; returns a function that removes it. */
  on(type, callback) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(callback);
    return () => this.off(type, callback);
  }

  off(type, callback) {
    this.listeners.get(type)?.delete(callback);
  }

  /** Registers `callback` for the connection's status: connecting, connected, disconnected, reconnecting. */
  onStatusChange(callback) {
    this.statusListeners.add(callback);
    return () => this.statusListeners.delete(callback);
  }

  isConnected() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  handleMessage(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch (err) {
      console.error("[WebSocket] could not parse a message", err);
      return;
    }
    if (!message || typeof message.type !== "string") {
      console.error("[WebSocket] a message without a type", message);
      return;
    }
    const listeners = this.listeners.get(message.type);
    if (!listeners || listeners.size === 0) return;
    for (const callback of listeners) {
      try {
        callback(message);
      } catch (err) {
        console.error(`[WebSocket] a ${message.type} listener failed`, err);
      }
    }
  }

  scheduleReconnect() {
    if (this.reconnectAttempts >= this.maxReconnectAttempts) {
      console.error("[WebSocket] giving up after", this.reconnectAttempts, "attempts");
      return;
    }
    const delay = Math.min(this.reconnectInterval * 2 ** this.reconnectAttempts, this.maxReconnectInterval);
    this.reconnectAttempts += 1;
    this.setStatus("reconnecting");
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delay);
  }

  setStatus(status) {
    this.status = status;
    for (const callback of this.statusListeners) callback(status);
  }
}
