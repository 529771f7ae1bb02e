// 登录 page: POST /api/v1/auth/login, keep the tokens in sessionStorage, go to the app.
import { API_PREFIX, safeNextPath, tokens } from "./common.js";

const form = document.getElementById("login-form");
const errorBox = document.getElementById("login-error");
const submit = document.getElementById("login-submit");

function showError(message) {
  errorBox.textContent = message || "";
  errorBox.hidden = !message;
}

async function readJson(res) {
  try {
    return await res.json();
  } catch {
    return null;
  }
}

async function onSubmit(event) {
  event.preventDefault();
  const username = form.username.value.trim();
  const password = form.password.value;
  if (!username || !password) {
    showError("请输入用户名和密码。");
    (username ? form.password : form.username).focus();
    return;
  }
  showError("");
  submit.disabled = true;
  submit.textContent = "登录中…";
  try {
    const res = await fetch(`${API_PREFIX}/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ username, password, client: "web" }),
    });
    const body = await readJson(res);
    if (!res.ok || !body || !body.access_token) {
      showError((body && body.message) || `登录失败（HTTP ${res.status}）`);
      form.password.select();
      return;
    }
    tokens.clear();
    tokens.save(body);
    const next = safeNextPath(new URLSearchParams(location.search).get("next"));
    location.replace(next || "/app");
  } catch (err) {
    console.error(err);
    showError("无法连接服务器，请稍后重试。");
  } finally {
    submit.disabled = false;
    submit.textContent = "登录";
  }
}

form.addEventListener("submit", onSubmit);
