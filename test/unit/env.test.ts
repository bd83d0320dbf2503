import { describe, expect, it } from 'vitest';
import { commandEnvironment, SECRET_NAME_PATTERN } from '../../src/activities/tools/env.js';

describe('commandEnvironment', () => {
  const parent: NodeJS.ProcessEnv = {
    PATH: '/usr/bin:/bin',
    HOME: '/home/dev',
    USER: 'dev',
    LANG: 'en_GB.UTF-8',
    LC_ALL: 'en_GB.UTF-8',
    TERM: 'xterm-256color',
    TZ: 'Europe/London',
    TMPDIR: '/tmp',
    OPENAI_API_KEY: 'sk-test-openai',
    OPENAI_BASE_URL: 'http://127.0.0.1:9999/v1',
    TEMPORAL_API_KEY: 'temporal-secret',
    TEMPORAL_ADDRESS: 'cloud.example:7233',
    MY_SECRET_TOKEN: 'hunter2',
    AWS_REGION: 'eu-west-1',
    GITHUB_SHA: 'abc123',
    GH_HOST: 'github.example',
    DATABASE_URL: 'postgres://u:p@db/app',
    NODE_OPTIONS: '--require ./evil.js',
    LC_AUTH_HELPER: 'looks secret despite the LC_ prefix',
    PAGER: 'less',
    HTTPS_PROXY: 'http://proxy.internal:3128',
    http_proxy: 'http://user:password@proxy.internal:3128',
  };

  it('keeps the allowlisted variables', () => {
    const env = commandEnvironment(parent);
    for (const name of ['PATH', 'HOME', 'USER', 'LANG', 'LC_ALL', 'TERM', 'TZ', 'TMPDIR']) {
      expect(env[name], name).toBe(parent[name]);
    }
  });

  it('drops everything else, and anything that looks secret even when allowlisted', () => {
    const env = commandEnvironment(parent);
    for (const name of [
      'OPENAI_API_KEY',
      'OPENAI_BASE_URL',
      'TEMPORAL_API_KEY',
      'TEMPORAL_ADDRESS',
      'MY_SECRET_TOKEN',
      'AWS_REGION',
      'GITHUB_SHA',
      'GH_HOST',
      'DATABASE_URL',
      'NODE_OPTIONS',
      'LC_AUTH_HELPER',
    ]) {
      expect(env, name).not.toHaveProperty(name);
    }
    const values = Object.values(env).join('\n');
    for (const secret of ['sk-test-openai', 'temporal-secret', 'hunter2', 'password']) {
      expect(values).not.toContain(secret);
    }
  });

  it('passes proxies through unless they carry credentials', () => {
    const env = commandEnvironment(parent);
    expect(env.HTTPS_PROXY).toBe('http://proxy.internal:3128');
    expect(env).not.toHaveProperty('http_proxy');
  });

  it('adds non-interactive settings, overriding the parent', () => {
    const env = commandEnvironment(parent);
    expect(env).toMatchObject({
      PAGER: 'cat',
      GIT_PAGER: 'cat',
      GIT_TERMINAL_PROMPT: '0',
      GIT_EDITOR: 'true',
      NO_COLOR: '1',
    });
  });

  it('leaves the parent untouched and skips unset values', () => {
    const copy = { ...parent, UNSET: undefined };
    const env = commandEnvironment(copy);
    expect(copy).toEqual({ ...parent, UNSET: undefined });
    expect(env).not.toHaveProperty('UNSET');
  });
});

describe('SECRET_NAME_PATTERN', () => {
  it('matches names that look like secrets', () => {
    for (const name of [
      'OPENAI_API_KEY',
      'ANTHROPIC_API_KEY',
      'aws_secret_access_key',
      'NPM_TOKEN',
      'DB_PASSWORD',
      'GOOGLE_APPLICATION_CREDENTIALS',
      'HTTP_AUTH',
      'SSH_PRIVATE_KEY_PATH',
      'TEMPORAL_ADDRESS',
      'AZURE_TENANT_ID',
      'GH_ENTERPRISE_HOST',
      'GITHUB_REPOSITORY',
    ]) {
      expect(SECRET_NAME_PATTERN.test(name), name).toBe(true);
    }
  });

  it('leaves ordinary names alone', () => {
    for (const name of ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TERM', 'TMPDIR', 'USER', 'SHELL', 'GHOSTTY']) {
      expect(SECRET_NAME_PATTERN.test(name), name).toBe(false);
    }
  });
});
