-- Schema-faithful stand-in for the FreePBX `asterisk` database (userman and core
-- module.xml <database> sections, research/pbx.md §5.1).
CREATE TABLE userman_users (
  id INT AUTO_INCREMENT PRIMARY KEY, auth VARCHAR(150) DEFAULT 'freepbx', authid VARCHAR(750),
  username VARCHAR(150), description VARCHAR(255), password VARCHAR(255),
  default_extension VARCHAR(45) NOT NULL DEFAULT 'none', primary_group INT, permissions BLOB,
  fname VARCHAR(100), lname VARCHAR(100), displayname VARCHAR(200), title VARCHAR(100),
  company VARCHAR(100), department VARCHAR(100), language VARCHAR(100), timezone VARCHAR(100),
  dateformat VARCHAR(100), timeformat VARCHAR(100), datetimeformat VARCHAR(100), email TEXT,
  cell VARCHAR(100), work VARCHAR(100), home VARCHAR(100), fax VARCHAR(100),
  UNIQUE KEY username (username, auth)
) DEFAULT CHARSET=utf8mb4;
CREATE TABLE userman_groups (
  id INT AUTO_INCREMENT PRIMARY KEY, auth VARCHAR(150) DEFAULT 'freepbx', authid VARCHAR(750),
  groupname VARCHAR(150), description VARCHAR(255), language VARCHAR(100), timezone VARCHAR(100),
  dateformat VARCHAR(100), timeformat VARCHAR(100), datetimeformat VARCHAR(100), priority INT NOT NULL DEFAULT 5,
  users LONGBLOB, permissions LONGBLOB, local INT NOT NULL DEFAULT 0,
  UNIQUE KEY groupname (groupname, auth)
) DEFAULT CHARSET=utf8mb4;
CREATE TABLE userman_directories (
  id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(250), driver VARCHAR(150), active TINYINT(1) DEFAULT 0,
  `order` INT DEFAULT 5, `default` TINYINT(1) DEFAULT 0, locked TINYINT(1) DEFAULT 0
);
CREATE TABLE users (
  extension VARCHAR(20) NOT NULL DEFAULT '' PRIMARY KEY, password VARCHAR(20), name VARCHAR(50),
  voicemail VARCHAR(50), ringtimer INT, noanswer VARCHAR(100), recording VARCHAR(50),
  outboundcid VARCHAR(50), sipname VARCHAR(50), noanswer_cid VARCHAR(80) NOT NULL DEFAULT '',
  busy_cid VARCHAR(80) NOT NULL DEFAULT '', chanunavail_cid VARCHAR(80) NOT NULL DEFAULT '',
  noanswer_dest VARCHAR(255) NOT NULL DEFAULT '', busy_dest VARCHAR(255) NOT NULL DEFAULT '',
  chanunavail_dest VARCHAR(255) NOT NULL DEFAULT '', mohclass VARCHAR(80) DEFAULT 'default'
) DEFAULT CHARSET=utf8mb4;
CREATE TABLE devices (
  id VARCHAR(20) NOT NULL DEFAULT '' PRIMARY KEY, tech VARCHAR(10) NOT NULL DEFAULT '',
  dial VARCHAR(255) NOT NULL DEFAULT '', devicetype VARCHAR(5) NOT NULL DEFAULT '',
  user VARCHAR(50), description VARCHAR(50), emergency_cid VARCHAR(100), hint_override VARCHAR(100)
) DEFAULT CHARSET=utf8mb4;
CREATE TABLE incoming (
  cidnum VARCHAR(20), extension VARCHAR(50), destination VARCHAR(50), privacyman TINYINT(1),
  alertinfo VARCHAR(255), ringing VARCHAR(20), fanswer VARCHAR(20), mohclass VARCHAR(80) NOT NULL DEFAULT 'default',
  description VARCHAR(80), grppre VARCHAR(80), delay_answer INT, pricid VARCHAR(20),
  pmmaxretries VARCHAR(2), pmminlength VARCHAR(2), reversal VARCHAR(10) DEFAULT '', rvolume VARCHAR(2) DEFAULT '',
  indication_zone VARCHAR(20) DEFAULT 'default'
) DEFAULT CHARSET=utf8mb4;
INSERT INTO userman_directories VALUES (1, 'PBX Internal Directory', 'Freepbx', 1, 1, 1, 0);
